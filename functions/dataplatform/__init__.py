"""dataplatform: a schema-driven, serverless data platform on Google Cloud.

Teams describe event schemas (`schemas/*.yaml`) and data endpoints (`workflows/*.yaml` +
`.sql`); the same definitions drive the deployed platform (Pulumi, `infra/`) and the local
stack (emulators + DuckDB).
"""

__version__ = "0.1.0"
