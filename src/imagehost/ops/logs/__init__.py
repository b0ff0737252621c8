"""The action log as a page for admins: newest first, filtered, paged, across rotated files."""
