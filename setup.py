"""Build definition for Cortex's C kernels; all other metadata lives in pyproject.toml."""

from setuptools import Extension, setup

setup(
    ext_modules=[
        Extension(
            "embed._cortex_kernels",
            sources=["embed/_kernels/cortex_kernels.c"],
            depends=[f"embed/_kernels/{h}.h" for h in
                     ("common", "quantize", "floatops", "layernorm", "matmul", "attention")],
            # No global -m flags: each SIMD path carries its own target attribute and is only
            # called after a run-time CPU check. fp-contract=off keeps results bit-exact.
            extra_compile_args=["-O3", "-ffp-contract=off", "-fno-fast-math", "-std=c11"],
            optional=True,
        )
    ]
)
