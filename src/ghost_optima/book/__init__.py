"""The book machinery: claims registry and rules, records, profiles, the papermill pipeline and
the generated pages. It imports the science package; the science never imports it."""
