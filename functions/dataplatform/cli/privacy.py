"""Privacy commands: `keys bootstrap`, `forget USER_ID` and `reveal USER_ID`.

Both read their configuration like the functions do (`dataplatform.settings`, from the
environment: DATAPLATFORM_KMS, DATAPLATFORM_CONFIG_BUCKET, the emulator hosts, ...), so the
CLI and the deployed functions always talk to the same KMS key, bucket and key store.
When the local stack is up, its environment (emulator hosts, key file) is used, so the
commands act on the running stack without exporting anything by hand.
"""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Iterator, Mapping
from typing import Annotated, Any

import typer
from rich.table import Table

from dataplatform.cli.app import JsonOption, app, console, platform_errors, print_json

@contextlib.contextmanager
def stack_environment() -> Iterator[Any]:
    """The running local stack's environment for the block, and its state (None when down)."""
    from dataplatform.local.stack import Stack, platform_environment
    from dataplatform.settings import reset_runtime

    state = Stack().load()
    if state is None or not state.complete or state.dead():
        yield None
        return
    with platform_environment(state.env):
        reset_runtime()
        try:
            yield state
        finally:
            reset_runtime()


keys_app = typer.Typer(help="Platform key material (KMS-wrapped keysets and the HMAC secret).", no_args_is_help=True)
app.add_typer(keys_app, name="keys")


@keys_app.command("bootstrap")
@platform_errors
def keys_bootstrap(as_json: JsonOption = False) -> None:
    """Create the platform key material that is missing (idempotent; never overwrites)."""
    from dataplatform.privacy.keys import bootstrap
    from dataplatform.settings import runtime

    with stack_environment():
        rt = runtime()
        created = bootstrap(rt.kms, rt.blobs)
    if as_json:
        print_json({"kms_key_uri": rt.kms.key_uri, "bucket": rt.settings.config_bucket, "objects": created})
        return
    table = Table(title=f"Platform keys in gs://{rt.settings.config_bucket} under {rt.kms.key_uri}", title_justify="left")
    table.add_column("object")
    table.add_column("state")
    for name, was_created in created.items():
        table.add_row(name, "created" if was_created else "already present")
    console.print(table)


UserIdArgument = Annotated[
    str,
    typer.Argument(
        help="The user's id as the events carry it; '-' reads it from stdin (keeps it out of shell history).",
        show_default=False,
    ),
]


@app.command("forget")
@platform_errors
def forget_command(user_id: UserIdArgument, as_json: JsonOption = False) -> None:
    """Erase a user: destroy their keys (crypto-shredding); their encrypted data becomes unreadable."""
    from dataplatform.pipeline.forget import forget
    from dataplatform.settings import runtime

    if user_id == "-":
        user_id = sys.stdin.readline().rstrip("\r\n")
    with stack_environment():
        result = forget(user_id, runtime().forget_deps())
    if as_json:
        print_json({"record_id": result.record_id, "erased": result.erased})
        return
    if result.erased:
        console.print(f"Erased: the keys of record {result.record_id} are destroyed; their encrypted fields are unreadable.")
    else:
        console.print(
            f"Nothing to erase: record {result.record_id} had no keys (a tombstone now stops keys being minted for it)."
        )


class RuntimeWarehouse:
    """`ports.Warehouse.query` over the local runtime's HTTP API (it alone opens DuckDB)."""

    name = "local-runtime"

    def __init__(self, client: Any) -> None:
        self.client = client

    def query(self, sql: str, params: Mapping[str, Any] | None = None) -> list[dict[str, Any]]:
        return self.client.rows(sql, params)


@app.command("reveal")
@platform_errors
def reveal_command(user_id: UserIdArgument, as_json: JsonOption = False) -> None:
    """The data-subject access request: the user's events from the local warehouse, decrypted."""
    from dataplatform.errors import PlatformError
    from dataplatform.pipeline.reveal import reveal, to_json
    from dataplatform.settings import runtime

    if user_id == "-":
        user_id = sys.stdin.readline().rstrip("\r\n")
    with stack_environment() as state:
        if state is None:
            raise PlatformError("reveal reads the local stack's warehouse and key store; run `dataplatform local up` first")
        rt = runtime()
        result = reveal(
            user_id, catalog=rt.catalog, keys=rt.key_service, platform=rt.platform_keys,
            warehouse=RuntimeWarehouse(state.runtime()), clock=rt.clock,
        )
    if as_json:
        print_json(to_json(result))
        return
    if result.status != "found":
        console.print(
            {"erased": f"Record {result.record_id} was erased: no key and no pseudonym remain, nothing can be revealed.",
             "unknown": f"No keys for record {result.record_id}: the platform never stored an event of this user."}[result.status]
        )
        return
    console.print(f"Record {result.record_id}, pseudonym {result.pseudonym}: {result.event_count} event(s)")
    for table in result.tables:
        if table.rows:
            console.print(f"[bold]{table.event_key}[/bold] ({len(table.rows)})")
            for row in table.rows:
                console.print_json(data=row, default=str)
