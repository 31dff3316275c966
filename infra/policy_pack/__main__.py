"""The policy pack: `pulumi preview --policy-pack infra/policy_pack` (policies in infra/policies.py)."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from pulumi_policy import EnforcementLevel, PolicyPack  # noqa: E402

from infra.policies import POLICIES  # noqa: E402

PolicyPack(
    name="dataplatform-guardrails",
    enforcement_level=EnforcementLevel.MANDATORY,
    policies=POLICIES,
)
