"""Privacy commands: `keys bootstrap` (create the platform key material) and `forget USER_ID`.

Both read their configuration like the functions do (`dataplatform.settings`, from the
environment: DATAPLATFORM_KMS, DATAPLATFORM_CONFIG_BUCKET, the emulator hosts, ...), so the
CLI and the deployed functions always talk to the same KMS key, bucket and key store.
"""

from __future__ import annotations

import sys
from typing import Annotated

import typer
from rich.table import Table

from dataplatform.cli.app import JsonOption, app, console, platform_errors, print_json

keys_app = typer.Typer(help="Platform key material (KMS-wrapped keysets and the HMAC secret).", no_args_is_help=True)
app.add_typer(keys_app, name="keys")


@keys_app.command("bootstrap")
@platform_errors
def keys_bootstrap(as_json: JsonOption = False) -> None:
    """Create the platform key material that is missing (idempotent; never overwrites)."""
    from dataplatform.privacy.keys import bootstrap
    from dataplatform.settings import runtime

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
