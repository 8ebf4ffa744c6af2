"""lsgan: label-free conditional GANs on PyTorch Lightning."""
__version__ = "0.2.0"
