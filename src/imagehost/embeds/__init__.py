"""Embeds: small pages and htmx fragments other sites show (an image card, an album's gallery, the newest images)."""
