"""ISBT 128 bag labels: their data structures, barcodes (Code 128 for each structure, a
DataMatrix with the compound message) and renderings (PDF to print, PNG to show).

ICCBBA's code tables are licensed: v2v ships none. A site loads its own product description
codes (`product_codes`, `V2V_PRODUCT_CODES_FILE`); without them a label has no product code.
"""

from v2v_platform.labels.data_structures import InvalidLabelData
from v2v_platform.labels.label import Label, barcode_texts
from v2v_platform.labels.product_codes import (
    NO_PRODUCT_CODES,
    ProductCodes,
    ProductCodesSettings,
    UnknownProductCode,
    load_product_codes,
)
from v2v_platform.labels.render import label_pdf, label_png

__all__ = [
    "NO_PRODUCT_CODES",
    "InvalidLabelData",
    "Label",
    "ProductCodes",
    "ProductCodesSettings",
    "UnknownProductCode",
    "barcode_texts",
    "label_pdf",
    "label_png",
    "load_product_codes",
]
