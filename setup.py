"""Packaging detail pyproject.toml cannot express: install the checkout's models/ as radedge/shipped/.

The registry looks there after $RADEDGE_MODEL_DIR and the checkout's models/, so a plain
`pip install .` ships the default models with the package. runtimes/ (the engine builders behind
`radedge build-engine`) is installed beside radedge; export/ and benchmarks/ stay in the checkout.
"""
from setuptools import find_packages, setup

setup(
    packages=find_packages(include=["radedge", "radedge.*", "runtimes", "runtimes.*"]) + ["radedge.shipped"],
    package_dir={"radedge.shipped": "models"},
    package_data={"radedge": ["lexicons/**/*"], "radedge.shipped": ["**/*"]},
    # Only what the runtime loads: an fp32 export left in a model folder is for the export checks.
    exclude_package_data={"radedge.shipped": ["**/*.fp32.onnx", "**/*.tmp"]},
    include_package_data=False,
)
