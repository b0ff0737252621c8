"""Where an image can be reached (direct link, thumbnails, page, download, delete), and its one JSON shape."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

from litestar import Request

from imagehost.images.pipeline import sizes_below
from imagehost.images.service import ImageService, StoredImage
from imagehost.images.snippets import Snippet, image_snippets


@dataclass(frozen=True)
class Version:
    """One stored version of an image (a thumbnail, or the original) and its size in pixels."""

    url: str
    width: int
    height: int


class Links:
    """Absolute URLs for one request: direct links may live on a separate host (IMAGES_BASE_URL)."""

    def __init__(self, request: Request, service: ImageService) -> None:
        settings = service.settings
        self.site = settings.public_base_url or str(request.base_url).rstrip("/")
        self.service = service
        self.request_base = str(request.base_url)

    def image(self, image: StoredImage) -> str:
        return self.service.url_of(image, self.request_base)

    def delete(self, image: StoredImage, key: str | None = None) -> str:
        return f"{self.site}/delete/{image.id}" + (f"?key={quote(key)}" if key else "")

    def download(self, image: StoredImage) -> str:
        return f"{self.site}/download/{image.id}"

    def page(self, image: StoredImage) -> str:
        return f"{self.site}/i/{image.stored_name}"

    @property
    def thumbnail_sizes(self) -> tuple[int, ...]:
        return self.service.settings.thumbnail_sizes

    def sizes_for(self, image: StoredImage) -> tuple[int, ...]:
        """The thumbnails this image has: those smaller than its long side (unknown size: all)."""
        if not image.width or not image.height:
            return self.thumbnail_sizes
        return sizes_below(self.thumbnail_sizes, image.width, image.height)

    def thumbnail(self, image: StoredImage, size: int) -> str:
        """The thumbnail at `size`, or the original when there is none that large (or none at all)."""
        if size not in self.sizes_for(image):
            return self.image(image)
        base = self.image(image).rsplit("/images/", 1)[0]
        return f"{base}/images/thumbs/{size}/{image.stored_name}.webp"

    def preview(self, image: StoredImage, wanted: int = 480) -> str:
        """The smallest thumbnail at least `wanted` px on its long side, else the original (an
        image no larger than that has no such thumbnail, and is itself the right size)."""
        large_enough = [size for size in self.sizes_for(image) if size >= wanted]
        return self.thumbnail(image, min(large_enough)) if large_enough else self.image(image)

    def versions(self, image: StoredImage) -> list[Version]:
        """Every stored version of the image with its real size, smallest first: each thumbnail,
        then the original (left out when its size is unknown)."""
        found = []
        long_side = max(image.width or 0, image.height or 0)
        for size in self.sizes_for(image):
            scale = size / long_side if long_side else 1
            width = max(1, round((image.width or size) * scale))
            height = max(1, round((image.height or size) * scale))
            found.append(Version(self.thumbnail(image, size), width, height))
        if image.width and image.height:
            found.append(Version(self.image(image), image.width, image.height))
        return found

    def largest_within(self, image: StoredImage, width: int | None, height: int | None) -> Version | None:
        """The largest version that fits in width x height (a side left out does not limit)."""
        fitting = [
            version
            for version in self.versions(image)
            if (not width or version.width <= width) and (not height or version.height <= height)
        ]
        return fitting[-1] if fitting else None

    def srcset(self, image: StoredImage) -> str:
        """Each thumbnail with its real width, and the original last."""
        return ", ".join(f"{version.url} {version.width}w" for version in self.versions(image))

    def snippets(self, image: StoredImage) -> list[Snippet]:
        return image_snippets(self.image(image), image.original_name)

    def thumbnails(self, image: StoredImage) -> dict[str, str]:
        return {str(size): self.thumbnail(image, size) for size in self.thumbnail_sizes}  # originals above


def page_json(page: Any, links: Links) -> dict[str, Any]:
    """One page of images (the catalogue's, an embed gallery's): `data`, `page`, and `pagination`
    (`total_pages`, `total_items`)."""
    return {
        "status": "success",
        "page": page.page,
        "pagination": {"total_pages": page.total_pages, "total_items": page.total_items},
        "data": [image_json(image, links) for image in page.images],
    }


def image_json(image: StoredImage, links: Links) -> dict[str, Any]:
    """What an image looks like to API clients, everywhere: the catalogue, the list, its page, an
    upload's answer (which adds `status` and `delete_url`) and the conversion API (which adds its
    own fields)."""
    return {
        "id": image.id,
        "filename": image.stored_name,
        "original_name": image.original_name,
        "size": image.size_bytes,
        "size_kb": image.size_kb,
        "file_type": image.extension,
        "content_type": image.content_type,
        "upload_time": image.uploaded_at.isoformat(),
        "width": image.width,
        "height": image.height,
        "url": links.image(image),
        "page_url": links.page(image),
        "download_url": links.download(image),
        "thumbnails": links.thumbnails(image),
    }
