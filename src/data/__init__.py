"""make_data: validate the raw dataset against its schema and clean it."""
