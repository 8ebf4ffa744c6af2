"""lsgan: label-free conditional GANs on PyTorch Lightning."""
__version__ = "0.1.0"
