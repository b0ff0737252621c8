"""Exports: link sheets (PicHosting's XLSX and CSV), the catalogue as a spreadsheet, an album as a ZIP."""
