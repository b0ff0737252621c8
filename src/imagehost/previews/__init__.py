"""Link previews: OpenGraph and Twitter card tags on shared pages, and the oEmbed endpoint."""
