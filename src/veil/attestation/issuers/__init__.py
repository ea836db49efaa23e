"""Evidence issuers for use inside TEEs: they touch devices and files, never verify.

``GramineIssuer`` produces SGX DCAP quotes through Gramine's ``/dev/attestation`` pseudo-files;
``ConfigfsTsmIssuer`` produces TDX quotes or SEV-SNP reports through Linux configfs-tsm
(``/sys/kernel/config/tsm/report``). Both implement :class:`EvidenceIssuer`.
"""

from veil.attestation.issuers._base import EvidenceIssuer, embedded_report_data
from veil.attestation.issuers._configfs_tsm import ConfigfsTsmIssuer
from veil.attestation.issuers._gramine import GramineIssuer

__all__ = ["ConfigfsTsmIssuer", "EvidenceIssuer", "GramineIssuer", "embedded_report_data"]
