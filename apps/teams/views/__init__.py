"""Server-rendered team pages (htmx). One module per area; ``base`` holds the shared guard."""
