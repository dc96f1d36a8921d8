"""The browser pages, one module per area: projects.py (home, project, labeling, import, export)
and the quality pages beside it. access.py decides who may open them."""
