"""Reference servers for `just bench`: what ImageHost's upload figures are held against (issue 18)."""
