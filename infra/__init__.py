"""The Pulumi program of the platform (`Pulumi.yaml` → `main: infra/`) and its offline tools.

`__main__.py` composes the components from the definitions in `schemas/` and `workflows/`;
`plan.py` runs the same composition under the mocks of `mocks.py` (no cloud, no Pulumi CLI)
and `policies.py` holds the policy pack that checks what the program declares.
"""
