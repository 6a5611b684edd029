"""The doors citizens come in by, and the ways back to them."""
