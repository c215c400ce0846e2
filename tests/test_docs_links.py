"""Every relative link and image in README.md and docs/*.md resolves.

A link to a file must name one that exists; a ``#anchor`` into a markdown
file must name one of its headings, slugged as GitHub does. Links with a
scheme (``https://``, ``mailto:``) are not followed: the tests stay offline.
The pages and the code's comments state facts, not the history of this
project's issue tracker.
"""
import re
from pathlib import Path
from typing import Iterator, List, Set, Tuple

import pytest

REPO = Path(__file__).resolve().parents[1]
PAGES = [REPO / 'README.md', *sorted((REPO / 'docs').glob('*.md'))]

# [text](target) and ![alt](target), with an optional "title".
_LINK = re.compile(r'!?\[[^\]]*\]\(\s*<?([^)\s>]+)>?(?:\s+"[^"]*")?\s*\)')
_CODE_SPAN = re.compile(r'`[^`]*`')
_FENCE = re.compile(r'^\s*(```|~~~)')
_HEADING = re.compile(r'^(#{1,6})\s+(.*?)\s*#*\s*$')
# "issue 14": this project's tracker, which a reader does not have (issues
# of another repository are cited as "#16" beside its name).
_TRACKER_ISSUE = re.compile(r'\bissues? \d+', re.IGNORECASE)
# A table column of targets set during development ("| goal |").
_GOAL_COLUMN = re.compile(r'^\|.*\|\s*goals?\s*\|\s*$', re.IGNORECASE)
CODE = sorted(
    path
    for folder in ('mmfasternet', 'tools', 'benchmarks', 'configs', 'tests')
    for path in (REPO / folder).rglob('*.py'))


def prose_lines(text: str) -> Iterator[Tuple[int, str]]:
    """Line numbers and lines outside fenced code blocks."""
    in_fence = False
    for number, line in enumerate(text.splitlines(), 1):
        if _FENCE.match(line):
            in_fence = not in_fence
            continue
        if not in_fence:
            yield number, line


def github_slug(heading: str) -> str:
    """The anchor GitHub gives a heading: the rendered text in lower case,
    punctuation removed (``-`` and ``_`` kept), each space a ``-``."""
    text = re.sub(r'!?\[([^\]]*)\]\([^)]*\)', r'\1', heading)  # links
    text = text.replace('`', '').replace('*', '')
    text = re.sub(r'[^\w\- ]', '', text.strip().lower())
    return text.replace(' ', '-')


def anchors(page: Path) -> Set[str]:
    """The anchors of a page's headings (repeats get ``-1``, ``-2``...)."""
    seen: dict = {}
    found = set()
    for _, line in prose_lines(page.read_text(encoding='utf-8')):
        match = _HEADING.match(line)
        if not match:
            continue
        slug = github_slug(match.group(2))
        count = seen.get(slug, 0)
        seen[slug] = count + 1
        found.add(slug if count == 0 else f'{slug}-{count}')
    return found


def broken_links(page: Path) -> List[str]:
    """``line: target (reason)`` for each link of ``page`` that does not
    resolve."""
    problems = []
    for number, line in prose_lines(page.read_text(encoding='utf-8')):
        for target in _LINK.findall(_CODE_SPAN.sub('code', line)):
            if re.match(r'^[a-zA-Z][a-zA-Z0-9+.-]*:', target):
                continue  # https://, mailto:, ...: not followed offline
            path, _, anchor = target.partition('#')
            resolved = (page.parent / path).resolve() if path else page
            if not resolved.exists():
                problems.append(f'{number}: {target} (no such file)')
            elif anchor and resolved.suffix == '.md' and \
                    anchor not in anchors(resolved):
                problems.append(f'{number}: {target} (no heading '
                                f'#{anchor} in {resolved.name})')
    return problems


@pytest.mark.parametrize(
    'page', PAGES, ids=[str(p.relative_to(REPO)) for p in PAGES])
def test_links_resolve(page):
    assert broken_links(page) == []


def test_every_docs_page_is_in_the_index():
    index = (REPO / 'docs' / 'README.md').read_text(encoding='utf-8')
    linked = {Path(t).name for t in _LINK.findall(_CODE_SPAN.sub('', index))}
    pages = {p.name for p in PAGES if p.parent.name == 'docs'} - {'README.md'}
    assert pages - linked == set()


@pytest.mark.parametrize('heading,slug', [
    ('Checkpoints on PyTorch ≥ 2.6', 'checkpoints-on-pytorch--26'),
    ("COCO: Mask R-CNN (the paper's experiments)",
     'coco-mask-r-cnn-the-papers-experiments'),
    ('Speed: `make compare`', 'speed-make-compare'),
    ('Weight layouts: three ways, one `init_cfg`',
     'weight-layouts-three-ways-one-init_cfg'),
])
def test_github_slug(heading, slug):
    assert github_slug(heading) == slug


def test_broken_links_are_reported(tmp_path):
    (tmp_path / 'other.md').write_text('# Real heading\n')
    page = tmp_path / 'page.md'
    page.write_text('# Top\n'
                    '[ok](other.md#real-heading) [ok](#top) '
                    '[web](https://example.org/x.md)\n'
                    '```\n[in code](missing.md)\n```\n'
                    '[gone](missing.md) ![img](missing.png)\n'
                    '[bad anchor](other.md#nope) [self](#nowhere)\n')
    assert broken_links(page) == [
        '6: missing.md (no such file)',
        '6: missing.png (no such file)',
        '7: other.md#nope (no heading #nope in other.md)',
        '7: #nowhere (no heading #nowhere in page.md)',
    ]


def notebook_lines(path: Path) -> List[str]:
    """``line: text`` for each mention of a tracker issue or a goal
    column in ``path``."""
    found = []
    for number, line in enumerate(
            path.read_text(encoding='utf-8').splitlines(), 1):
        if _TRACKER_ISSUE.search(line) or _GOAL_COLUMN.match(line):
            found.append(f'{number}: {line.strip()}')
    return found


def test_pages_and_code_state_facts_not_tracker_history():
    found = {
        str(path.relative_to(REPO)): notebook_lines(path)
        for path in PAGES + CODE if path != Path(__file__).resolve()
    }
    assert {k: v for k, v in found.items() if v} == {}


def test_notebook_lines_are_found(tmp_path):
    page = tmp_path / 'page.md'
    page.write_text('As issue 14 showed.\n| model | goal |\n'
                    'the official issue #30\n| goal met | 2x |\n')
    assert notebook_lines(page) == [
        '1: As issue 14 showed.', '2: | model | goal |'
    ]
