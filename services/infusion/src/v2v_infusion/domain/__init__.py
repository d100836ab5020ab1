"""The infusion domain: product units at a treating site, bedside checks, acknowledgements."""
