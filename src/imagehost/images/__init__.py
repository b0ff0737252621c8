"""Images: upload, storage, catalogue, download and deletion."""
