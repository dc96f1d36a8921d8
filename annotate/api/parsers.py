"""The API's JSON parser: DRF's, refusing a NUL character (U+0000) anywhere in the body, in keys
or strings, with a 400 that says where. PostgreSQL cannot store it in text or JSON, and a value
that reached the database with one failed there as a 500 (issue 17, item 1)."""

from rest_framework.exceptions import ParseError
from rest_framework.parsers import JSONParser

from annotate.importing.rows import nul_path


class JSONParserNoNul(JSONParser):
    def parse(self, stream, media_type=None, parser_context=None):
        data = super().parse(stream, media_type, parser_context)
        where = nul_path(data)
        if where is not None:
            raise ParseError(f"JSON body, {where}: contains a NUL character (\\u0000), which is not accepted")
        return data
