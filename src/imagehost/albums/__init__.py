"""Albums and articles (PicHosting's catalogue): ZIP batch uploads and the JSON API over them."""
