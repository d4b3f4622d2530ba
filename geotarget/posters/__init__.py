"""Posters: an offer on paper (a QR code of a signed link to it at one store), the page a scan opens, and the
code that page hands out; offline meets online, and the scan is measured like an impression."""
