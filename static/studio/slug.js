// Slugs derived from names as the user types (until the slug is edited by hand).
