"""Builds the C extension (setup.py rather than pyproject `ext-modules`: works with any setuptools >= 68)."""

from setuptools import Extension, setup

setup(
    ext_modules=[
        Extension(
            "dataplatform_avro",
            sources=["dataplatform_avro.c"],
            extra_compile_args=["-Wall", "-Wextra", "-Wno-unused-parameter"],
        )
    ]
)
