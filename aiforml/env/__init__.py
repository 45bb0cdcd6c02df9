"""The environment behind the Model Context Protocol, and a Ray pool of such environments.

``server`` exposes one episode of the pipeline as MCP tools (stdio or HTTP);
``session`` holds an episode's overrides and runs cancellable evaluations; ``models``
types the tools' outputs; ``actor`` puts a server in a Ray actor that talks to it through
the in-process MCP client; ``pool`` evaluates batches of programs over N actors with
deadlines, retries and a result ``cache``.

Importing this package stays light: import the submodule you need.
"""
