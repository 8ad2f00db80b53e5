"""No two modules of userbase import each other in a circle, imports inside functions included.

grimp (import-linter's graph, which `lint-imports` in scripts/check reads too) counts every
import statement, also the ones deferred into a function: a deferred import that dodges a circle
at import time still is one.
"""

import grimp


def import_circles() -> dict[frozenset[str], tuple[str, ...]]:
    """Each group of modules that import each other, with one chain of imports around it (its
    first module again at the end)."""
    graph = grimp.build_graph("userbase", cache_dir=None)
    circles: dict[frozenset[str], tuple[str, ...]] = {}
    for module in sorted(graph.modules):
        if any(module in group for group in circles):
            continue
        # The modules `module` imports, directly or not, that also import it.
        group = graph.find_upstream_modules(module) & graph.find_downstream_modules(module)
        if not group:
            continue
        # Every module on a shortest chain from an import of `module` back to it is in the group.
        first = min(graph.find_modules_directly_imported_by(module) & group)
        chain = graph.find_shortest_chain(importer=first, imported=module)
        assert chain is not None
        circles[frozenset({module, *group})] = (module, *chain)
    return circles


def _describe(chains: list[tuple[str, ...]]) -> str:
    return "\n".join(" -> ".join(chain) for chain in chains)


def test_userbase_has_no_import_circle() -> None:
    chains = list(import_circles().values())
    assert chains == [], "modules that import each other in a circle:\n" + _describe(chains)
