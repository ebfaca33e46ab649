"""tfc-inference: improved inference at compression time for TensorFlow Compression models."""

import setuptools

setuptools.setup(
    name="tfc-inference",
    version="0.1.0",
    description=("Iterative inference (SGA), lossy bits-back coding and Bayesian "
                 "arithmetic coding for TensorFlow Compression hyperprior models."),
    long_description=open("README.md", encoding="utf-8").read(),
    long_description_content_type="text/markdown",
    packages=setuptools.find_packages(include=["tfc_inference", "tfc_inference.*"]),
    python_requires=">=3.9,<3.12",
    install_requires=[
        "tensorflow==2.14.1",
        "tensorflow-compression==2.14.1",
        "tensorflow-probability==0.22.1",
        "numpy<2",
        "absl-py",
        "pillow",
        "constriction>=0.3,<0.6",
    ],
    extras_require={
        "test": ["pytest", "matplotlib"],
        "plots": ["matplotlib"],
    },
    classifiers=[
        "Programming Language :: Python :: 3.9",
        "Programming Language :: Python :: 3.10",
        "Programming Language :: Python :: 3.11",
        "Topic :: Scientific/Engineering :: Artificial Intelligence",
    ],
)
