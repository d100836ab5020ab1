"""The release domain: versioned specifications and the release record of a product batch."""
