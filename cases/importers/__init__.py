"""Lender placement files: streaming readers, header aliases, row validation and the apply services."""
