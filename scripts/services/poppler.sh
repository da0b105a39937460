# pdftotext, pdfinfo and pdftoppm: letter tests read the PDFs we render.
PACKAGES+=(poppler-utils)
