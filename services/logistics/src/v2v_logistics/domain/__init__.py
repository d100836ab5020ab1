"""The logistics domain: shipments of one COI, custody handoffs, temperatures and windows."""
