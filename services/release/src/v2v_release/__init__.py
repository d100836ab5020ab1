"""v2v release service: QC results against versioned specifications, provisional and final
certification, rejection, OOS exceptional release and post-release failures (e-signed)."""
