"""Where one page sits among its listing's pages: the same rule for album grids and embed galleries."""

from __future__ import annotations

import math


class Paged:
    """For a page's dataclass with `page` and `total_items`; `per_page` says how many a page holds."""

    page: int
    total_items: int

    @property
    def per_page(self) -> int:
        raise NotImplementedError

    @property
    def total_pages(self) -> int:
        return max(1, math.ceil(self.total_items / self.per_page))

    @property
    def has_previous(self) -> bool:
        return self.page > 1

    @property
    def has_next(self) -> bool:
        return self.page < self.total_pages
