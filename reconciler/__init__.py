"""recon: a Terraform-style state reconciler for Eucalyptus and other AWS-compatible clouds."""

__version__ = "0.1.0"
