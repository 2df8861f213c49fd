"""The one exception type the command line turns into a single line on stderr."""


class CnnlabError(Exception):
    """A problem the user can fix: bad input, a missing file, an impossible setting.

    The message names the file or option and says what to do. The CLI prints it as
    one line (``error: ...``) and exits with status 1, without a traceback.
    """
