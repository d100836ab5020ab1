"""v2v logistics service: shipments, custody handoffs, temperatures, courier scanning."""
