"""Packages of mova-bench; everything else about the build is in pyproject.toml.

The built-in suites (``prompts/``) and model cards (``models/``) stay at the top of the repository
(the product layout) and are their only copy. A wheel or sdist maps each folder to a subpackage,
``mova_bench.data.prompts`` and ``mova_bench.data.models``, so an installed mova-bench carries them
as ``mova_bench/data/{prompts,models}/*.yaml`` (``suites.BUILTIN_SUITES_DIR``,
``cards.BUILTIN_MODELS_DIR``). An editable install reads the top-level folders directly.

This lives here rather than in pyproject.toml because ``[tool.setuptools.packages.find]`` cannot
add mapped packages: the list would have to be written out by hand and kept up to date.
"""

from setuptools import find_namespace_packages, setup

#: subpackage -> top-level folder it is built from
DATA_PACKAGES = {
    "mova_bench.data.prompts": "prompts",
    "mova_bench.data.models": "models",
}
#: what ships of each folder: suites and cards, and the first_frame images a suite names (paths
#: relative to the suite file, so they live in prompts/ or a folder below it)
DATA_FILES = {
    "mova_bench.data.prompts": ["*.yaml", "**/*.png", "**/*.jpg", "**/*.jpeg", "**/*.webp"],
    "mova_bench.data.models": ["*.yaml"],
    "mova_bench.report.templates": ["*.j2", "*.css", "*.js"],
    "mova_bench.generators.tiny": ["checkpoints/*.safetensors"],
    "mova_bench.weights": ["registry.yaml"],
}

setup(
    packages=[
        *find_namespace_packages(include=["mova_bench", "mova_bench.*"], exclude=["*.__pycache__"]),
        *DATA_PACKAGES,
    ],
    package_dir=DATA_PACKAGES,
    package_data=DATA_FILES,
)
