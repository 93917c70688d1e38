"""pkictl: certificate lifecycle manager for the e-government extranet certificate center."""

__version__ = "0.1.0"
