# The Chinese text legitimately uses full-width punctuation.
"""Generate the binary documents of the ``examples/`` sample corpus.

The ``examples/`` folder is a small, fictional knowledge base for "Orbit", an
internal deployment service run by a made-up Platform Delivery team. It is used
by the tests and the demo: ``orbit-runbook.md`` (English Markdown: deploys,
rollbacks, on-call, component owners in a table), ``orbit-faq.zh.md`` (Chinese
Markdown FAQ: quotas, log retention, maintenance window), ``release-notes.html``
(English HTML whose ``<main>`` body is wrapped in nav/script/footer boilerplate
that a parser must drop), ``security-policy.pdf`` (three pages with different
facts per page: English access control on page 1, English secrets handling on
page 2, Chinese incident reporting on page 3) and ``onboarding.zh.docx``
(Chinese onboarding guide with headings, lists and a table). Every document
holds its own specific facts, none repeated in another, and
``examples/questions.jsonl`` lists questions with their expected answer,
source file and page (``null`` answers mark questions the corpus cannot
answer). All text is original. This script writes only the PDF and DOCX files,
from text held below, with fixed metadata and timestamps so that re-running it
gives byte-identical output. The Chinese PDF page needs a CJK TrueType font,
e.g. ``apt-get install fonts-wqy-microhei``; set ``DOCQA_CJK_FONT`` to use
another font file.

Run it with ``.venv/bin/python scripts/make_examples.py``.
"""

from __future__ import annotations

import io
import logging
import os
import zipfile
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from docx import Document
from docx.document import Document as DocxDocument
from docx.enum.table import WD_TABLE_ALIGNMENT
from docx.oxml.ns import qn
from docx.shared import Pt
from fpdf import FPDF

logger = logging.getLogger("make_examples")

EXAMPLES_DIR = Path(__file__).resolve().parent.parent / "examples"
FIXED_DATE = datetime(2024, 6, 3, 9, 0, 0, tzinfo=UTC)
ZIP_DATE = (2024, 6, 3, 9, 0, 0)

CJK_FONT_CANDIDATES: tuple[Path, ...] = (
    Path("/usr/share/fonts/truetype/wqy/wqy-microhei.ttc"),
    Path("/usr/share/fonts/truetype/wqy/wqy-zenhei.ttc"),
    Path("/usr/share/fonts/opentype/noto/NotoSansCJK-Regular.ttc"),
    Path("/usr/share/fonts/opentype/noto/NotoSerifCJK-Regular.ttc"),
)


# ---------------------------------------------------------------------------
# Document text
# ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Section:
    """A heading followed by paragraphs; lines starting with "- " are bullets."""

    heading: str
    paragraphs: tuple[str, ...]


@dataclass(frozen=True)
class PdfPage:
    """One page of the PDF; ``cjk`` selects the CJK font."""

    title: str
    sections: tuple[Section, ...]
    cjk: bool = False


SECURITY_POLICY: tuple[PdfPage, ...] = (
    PdfPage(
        title="Orbit Platform Security Policy",
        sections=(
            Section(
                "Scope",
                (
                    "This policy applies to everyone who operates or uses the Orbit "
                    "deployment service, including contractors. It is maintained by "
                    "Marta Kowalski, the Platform security lead, and is reviewed "
                    "every 6 months. Version 2.3 of this policy took effect on "
                    "1 June 2024.",
                ),
            ),
            Section(
                "1. Access control",
                (
                    "All access to Orbit goes through the company single sign-on. "
                    "Local Orbit accounts are not allowed, with the single exception "
                    "of the break-glass account described below.",
                    "- Multi-factor authentication is required for every login, "
                    "including the command-line interface.",
                    "- A production session expires after 8 hours; the user must "
                    "then sign in again.",
                    "- Production access is granted for at most 120 days at a time "
                    "and must be renewed by the team lead.",
                    "- Requests for the orbit-admin role need approval from two "
                    "people: the requester's manager and the security lead.",
                    "- Accounts that have not been used for 35 days are disabled automatically.",
                ),
            ),
            Section(
                "2. Break-glass account",
                (
                    "A single break-glass account exists for emergencies when single "
                    "sign-on is unavailable. Its password is split between two "
                    "sealed envelopes kept by the security lead and the head of "
                    "infrastructure. Every use of the break-glass account must be "
                    "reported within 24 hours and triggers a password change.",
                ),
            ),
            Section(
                "3. Audit logging",
                (
                    "Every API call to orbit-api is written to the audit log with the "
                    "caller identity, the source address and the result. Audit logs "
                    "are kept for 13 months in write-once storage and can only be "
                    "read by the security team.",
                ),
            ),
        ),
    ),
    PdfPage(
        title="Secrets and encryption",
        sections=(
            Section(
                "4. Secrets management",
                (
                    "Secrets are stored only in the company Vault cluster, under the "
                    "path secret/orbit/<team>/<service>. Secrets must never be "
                    "placed in source code, container images or deploy manifests.",
                    "- API keys rotate every 30 days. Orbit issues the new key "
                    "7 days before the old one expires, so both keys are valid "
                    "during the overlap.",
                    "- Service account passwords must be at least 16 characters long.",
                    "- A leaked secret must be revoked within 2 hours of discovery, "
                    "even outside business hours.",
                ),
            ),
            Section(
                "5. Encryption",
                (
                    "- All network traffic to and between Orbit components uses "
                    "TLS 1.2 or newer; TLS 1.0 and 1.1 are disabled.",
                    "- TLS certificates are renewed automatically 14 days before they expire.",
                    "- Data at rest, including the scheduler database and stored "
                    "artefacts, is encrypted with AES-256.",
                ),
            ),
            Section(
                "6. Container images",
                (
                    "Images are scanned for known vulnerabilities before every "
                    "production deploy. A deploy is blocked if the image contains a "
                    "vulnerability with a CVSS score of 9.0 or higher. Base images "
                    "must be rebuilt at least once a month.",
                ),
            ),
            Section(
                "7. Exceptions",
                (
                    "Exceptions to this policy must be requested in writing and are "
                    "valid for at most 60 days. Approved exceptions are listed in "
                    "the security register.",
                ),
            ),
        ),
    ),
    PdfPage(
        title="安全事件报告（附录）",
        cjk=True,
        sections=(
            Section(
                "8. 报告时限",
                (
                    "任何员工发现可能的安全事件，必须在1小时内报告给安全团队，"
                    "报告邮箱为 security@orbit.example，"
                    "非工作时间请同时拨打安全值班电话6100。",
                ),
            ),
            Section(
                "9. 漏洞修复期限",
                (
                    "- 严重漏洞：7天内修复。",
                    "- 高危漏洞：21天内修复。",
                    "- 中危及低危漏洞：在下一个季度的版本中修复。",
                ),
            ),
            Section(
                "10. 事后复盘",
                (
                    "每次安全事件结束后5个工作日内，由事件负责人组织复盘会议，"
                    "并在内部知识库中发布复盘报告。复盘报告不追究个人责任，"
                    "重点是改进流程和工具。",
                ),
            ),
        ),
    ),
)


ONBOARDING_TITLE = "Orbit 平台组新员工入职指南"

ONBOARDING_INTRO = (
    "欢迎加入平台交付组！本指南帮助你在入职的前几周熟悉团队、工具和工作方式。"
    "如果遇到任何问题，先问你的导师，再在团队群里提问。"
)

ONBOARDING_SECTIONS: tuple[Section, ...] = (
    Section(
        "第一周安排",
        (
            "入职第 1 天上午 9:30 到行政前台领取工牌和笔记本电脑，"
            "笔记本统一为 14 英寸 MacBook Pro。下午由导师带你熟悉办公环境和团队成员。",
            "入职第 3 天之前必须完成线上信息安全培训，培训时长约 45 分钟，"
            "完成后系统会自动发放证书。未完成培训的员工无法申请任何系统权限。",
            "第一周结束前，请阅读 Orbit 运行手册和常见问题，"
            "并在测试环境中完成一次完整的部署和回滚练习。",
        ),
    ),
    Section(
        "导师制度",
        (
            "每位新员工都会分配一名导师，导师陪伴期为 8 周。"
            "导师负责解答日常问题、审核你的前几次代码合并请求，并在陪伴期结束时给出反馈。",
            "入职满 4 周之前，你不能单独执行生产环境部署；"
            "每一次生产部署都需要导师在旁确认。满 4 周并通过导师评估后，才可以单独操作。",
        ),
    ),
    Section(
        "系统权限",
        (
            "下表列出新员工常用的系统、负责人以及申请方式。"
            "请按表中的方式申请，不要直接私信负责人开通权限。",
        ),
    ),
    Section(
        "团队例会与沟通",
        (
            "- 每天 10:15 站会，时长不超过 10 分钟。",
            "- 每周四 15:00 团队周会，回顾上周的部署、事故和计划。",
            "- 每月最后一个周五下午举行技术分享，新员工在入职第二个月需要做一次分享。",
            "团队日常沟通使用企业微信群「平台交付组」，紧急事项请直接电话联系当周值班同事。",
        ),
    ),
    Section(
        "试用期与考核",
        (
            "试用期为 3 个月。试用期结束前两周，由直属经理赵磊组织转正评审，"
            "评审内容包括导师反馈、完成的任务以及一次技术分享的表现。",
            "如对本指南有修改建议，请联系团队助理孙悦。",
        ),
    ),
)

ONBOARDING_TABLE_HEADER: tuple[str, str, str] = ("系统", "负责人", "申请方式")
ONBOARDING_TABLE_ROWS: tuple[tuple[str, str, str], ...] = (
    ("GitLab 代码仓库", "张伟", "在「星桥」工单系统提交申请，导师审批"),
    ("Orbit 控制台", "李娜", "由导师在控制台中发送邀请"),
    ("Grafana 监控", "王强", "首次登录时自动开通只读权限"),
    ("VPN", "陈静", "联系 IT 服务台，分机 8008"),
    ("PagerDuty 值班", "刘洋", "入职满 8 周后由经理添加"),
)


# ---------------------------------------------------------------------------
# PDF
# ---------------------------------------------------------------------------


def find_cjk_font() -> Path:
    """Return a CJK font file, or raise with a hint on how to install one."""
    override = os.environ.get("DOCQA_CJK_FONT")
    candidates = (Path(override),) if override else CJK_FONT_CANDIDATES
    for path in candidates:
        if path.is_file():
            return path
    msg = (
        "No CJK font found (tried: "
        + ", ".join(str(p) for p in candidates)
        + "). Install one with `apt-get install fonts-wqy-microhei` "
        "or set DOCQA_CJK_FONT to a .ttf/.ttc file."
    )
    raise FileNotFoundError(msg)


def _pdf_paragraph(pdf: FPDF, text: str) -> None:
    width = pdf.epw
    if text.startswith("- "):
        pdf.set_x(pdf.l_margin + 4)
        pdf.cell(4, 6, "\u2022" if pdf.font_family == "cjk" else "-")
        pdf.multi_cell(width - 8, 6, text[2:], new_x="LMARGIN", new_y="NEXT")
    else:
        pdf.multi_cell(width, 6, text, new_x="LMARGIN", new_y="NEXT")
    pdf.ln(2)


def build_security_policy(path: Path) -> None:
    """Write the security policy PDF, one ``PdfPage`` per physical page."""
    pdf = FPDF(format="A4")
    pdf.set_creation_date(FIXED_DATE)
    pdf.set_title("Orbit Platform Security Policy")
    pdf.set_author("Marta Kowalski")
    pdf.set_subject("Security policy for the Orbit deployment service")
    pdf.set_creator("docqa scripts/make_examples.py")
    pdf.set_producer("fpdf2")
    pdf.set_lang("en")
    pdf.set_margins(20, 20, 20)
    # Pages must never overflow: the page number of each fact is part of the tests.
    pdf.set_auto_page_break(auto=False)
    pdf.add_font("cjk", "", str(find_cjk_font()))

    for number, page in enumerate(SECURITY_POLICY, start=1):
        pdf.add_page()
        body_font = ("cjk", "") if page.cjk else ("helvetica", "")
        head_font = ("cjk", "") if page.cjk else ("helvetica", "B")
        pdf.set_font(head_font[0], head_font[1], 16)
        pdf.multi_cell(pdf.epw, 9, page.title, new_x="LMARGIN", new_y="NEXT")
        pdf.ln(3)
        for section in page.sections:
            pdf.set_font(head_font[0], head_font[1], 12.5)
            pdf.multi_cell(pdf.epw, 7, section.heading, new_x="LMARGIN", new_y="NEXT")
            pdf.ln(1)
            pdf.set_font(body_font[0], body_font[1], 10.5)
            for paragraph in section.paragraphs:
                _pdf_paragraph(pdf, paragraph)
            pdf.ln(2)
        if pdf.get_y() > pdf.h - 25:
            msg = f"page {number} of {path.name} overflows; shorten its text"
            raise ValueError(msg)
        pdf.set_y(-15)
        pdf.set_font("helvetica", "", 8)
        pdf.cell(0, 10, f"Orbit Security Policy v2.3 - page {number}", align="C")

    pdf.output(str(path))


# ---------------------------------------------------------------------------
# DOCX
# ---------------------------------------------------------------------------


def _set_east_asian_font(document: DocxDocument, style_name: str, font_name: str) -> None:
    style = document.styles[style_name]
    rpr = style.element.get_or_add_rPr()
    rfonts = rpr.find(qn("w:rFonts"))
    if rfonts is None:
        rfonts = rpr.makeelement(qn("w:rFonts"), {})
        rpr.append(rfonts)
    rfonts.set(qn("w:eastAsia"), font_name)


def _add_docx_paragraph(document: DocxDocument, text: str) -> None:
    if text.startswith("- "):
        document.add_paragraph(text[2:], style="List Bullet")
    else:
        document.add_paragraph(text)


def build_onboarding(path: Path) -> None:
    """Write the Chinese onboarding guide DOCX."""
    document = Document()
    normal = document.styles["Normal"]
    normal.font.size = Pt(11)
    for style_name in ("Normal", "Title", "Heading 1", "Heading 2"):
        _set_east_asian_font(document, style_name, "Microsoft YaHei")

    props = document.core_properties
    props.title = ONBOARDING_TITLE
    props.author = "孙悦"
    props.last_modified_by = "孙悦"
    props.subject = "入职指南"
    props.language = "zh-CN"
    props.revision = 1
    props.created = FIXED_DATE.replace(tzinfo=None)
    props.modified = FIXED_DATE.replace(tzinfo=None)
    props.last_printed = FIXED_DATE.replace(tzinfo=None)

    document.add_heading(ONBOARDING_TITLE, level=0)
    document.add_paragraph(ONBOARDING_INTRO)
    for section in ONBOARDING_SECTIONS:
        document.add_heading(section.heading, level=1)
        for paragraph in section.paragraphs:
            _add_docx_paragraph(document, paragraph)
        if section.heading == "系统权限":
            table = document.add_table(rows=1, cols=len(ONBOARDING_TABLE_HEADER))
            table.style = "Table Grid"
            table.alignment = WD_TABLE_ALIGNMENT.CENTER
            for cell, text in zip(table.rows[0].cells, ONBOARDING_TABLE_HEADER, strict=True):
                cell.text = text
                for run in cell.paragraphs[0].runs:
                    run.bold = True
            for row in ONBOARDING_TABLE_ROWS:
                cells = table.add_row().cells
                for cell, text in zip(cells, row, strict=True):
                    cell.text = text
            document.add_paragraph("权限开通后，请在导师的陪同下第一次登录并确认权限正确。")

    buffer = io.BytesIO()
    document.save(buffer)
    path.write_bytes(_normalise_zip(buffer.getvalue()))


def _normalise_zip(data: bytes) -> bytes:
    """Re-pack a zip with sorted entries and fixed timestamps (reproducible)."""
    out = io.BytesIO()
    with (
        zipfile.ZipFile(io.BytesIO(data)) as src,
        zipfile.ZipFile(out, "w", compression=zipfile.ZIP_DEFLATED) as dst,
    ):
        names = src.namelist()
        # [Content_Types].xml conventionally comes first in OOXML packages.
        names.sort(key=lambda n: (n != "[Content_Types].xml", n))
        for name in names:
            info = zipfile.ZipInfo(name, date_time=ZIP_DATE)
            info.compress_type = zipfile.ZIP_DEFLATED
            info.external_attr = 0o644 << 16
            dst.writestr(info, src.read(name))
    return out.getvalue()


# ---------------------------------------------------------------------------


def main() -> None:
    """Regenerate ``examples/*.pdf`` and ``examples/*.docx``."""
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(message)s")
    logging.getLogger("fontTools").setLevel(logging.WARNING)
    EXAMPLES_DIR.mkdir(parents=True, exist_ok=True)
    outputs = {
        "security-policy.pdf": build_security_policy,
        "onboarding.zh.docx": build_onboarding,
    }
    for name, build in outputs.items():
        path = EXAMPLES_DIR / name
        build(path)
        logger.info("wrote %s (%d bytes)", path, path.stat().st_size)


if __name__ == "__main__":
    main()
