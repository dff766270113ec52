//! Hikvision upgrade packages: `digicap.dav` with its XOR-obfuscated `SWKH` header and the plain
//! header of the access-controller packages, files laid out back to back after the table, header
//! and file byte-sum checksums filled in (layout as `unpack::formats::hikvision` documents it).

use super::SynthError;
use crate::unpack::formats::hikvision::{
    ENTRY_LEN, FIXED_HEADER_LEN, FieldOrder, HeaderForm, MAGIC, NAME_LEN, byte_sum, xor_header,
};

/// One file of the package.
#[derive(Clone, Debug)]
pub struct PackageFile {
    /// Name in the table (at most 31 bytes, so it stays NUL-terminated).
    pub name: String,
    /// Its bytes.
    pub data: Vec<u8>,
}

impl PackageFile {
    /// A file named `name`.
    pub fn new(name: &str, data: impl Into<Vec<u8>>) -> Self {
        Self {
            name: name.to_owned(),
            data: data.into(),
        }
    }
}

/// What to write.
#[derive(Clone, Debug)]
pub struct Package {
    /// Obfuscated (`digicap.dav`) or plain header.
    pub form: HeaderForm,
    /// The order of offset and length in the table entries.
    pub order: FieldOrder,
    /// Whether the header length counts the table (`digicap.dav`) or only the fixed 64 bytes
    /// (the DS-K2602 access-controller packages).
    pub length_covers_table: bool,
    /// Whether the header checksum is filled in (the access-controller packages leave it 0).
    pub header_checksum: bool,
    /// Language code (1 English, 2 Chinese).
    pub language: u32,
    /// Device class code.
    pub device_class: u32,
    /// OEM code (1 is Hikvision).
    pub oem_code: u32,
    /// Firmware version word.
    pub version: u32,
    /// Feature flags word.
    pub features: u32,
    /// The files, written back to back after the table in this order.
    pub files: Vec<PackageFile>,
}

impl Package {
    /// A `digicap.dav` of `files`: obfuscated header that counts the table, checksums filled in,
    /// entries in offset-length order, English, Hikvision's own OEM code.
    pub fn digicap(files: Vec<PackageFile>) -> Self {
        Self {
            form: HeaderForm::Obfuscated,
            order: FieldOrder::OffsetLength,
            length_covers_table: true,
            header_checksum: true,
            language: 1,
            device_class: 0x0000_0002,
            oem_code: 1,
            version: 0x0504_0005,
            features: 0,
            files,
        }
    }

    /// An access-controller package like the DS-K2602's: plain header of length 64 (the table is
    /// not counted), header checksum unset, language 0xff.
    pub fn access_controller(files: Vec<PackageFile>) -> Self {
        Self {
            form: HeaderForm::Plain,
            length_covers_table: false,
            header_checksum: false,
            language: 0xff,
            device_class: 0x352,
            version: 1,
            ..Self::digicap(files)
        }
    }

    /// Where the table ends and the first file starts.
    pub fn data_start(&self) -> usize {
        FIXED_HEADER_LEN + ENTRY_LEN * self.files.len()
    }

    /// Writes the package.
    pub fn build(&self) -> Result<Vec<u8>, SynthError> {
        let too_big = |what: &str| SynthError::Invalid(format!("Hikvision package: {what}"));
        let u32_of = |n: usize, what: &str| u32::try_from(n).map_err(|_| too_big(what));
        let data_start = self.data_start();
        let header_length = if self.length_covers_table {
            data_start
        } else {
            FIXED_HEADER_LEN
        };
        let mut header = Vec::with_capacity(data_start);
        header.extend_from_slice(&MAGIC);
        header.extend_from_slice(&[0; 4]);
        for word in [
            u32_of(header_length, "header length")?,
            u32_of(self.files.len(), "file count")?,
            self.language,
            self.device_class,
            self.oem_code,
            self.version,
            self.features,
        ] {
            header.extend_from_slice(&word.to_le_bytes());
        }
        header.resize(FIXED_HEADER_LEN, 0);
        let mut offset = data_start;
        for f in &self.files {
            if f.name.len() >= NAME_LEN {
                return Err(too_big(&format!("name '{}' is over 31 bytes", f.name)));
            }
            let mut name = [0u8; NAME_LEN];
            name.get_mut(..f.name.len())
                .ok_or_else(|| too_big("name"))?
                .copy_from_slice(f.name.as_bytes());
            header.extend_from_slice(&name);
            let (o, l) = (
                u32_of(offset, "offset")?,
                u32_of(f.data.len(), "file size")?,
            );
            let (first, second) = match self.order {
                FieldOrder::OffsetLength => (o, l),
                FieldOrder::LengthOffset => (l, o),
            };
            header.extend_from_slice(&first.to_le_bytes());
            header.extend_from_slice(&second.to_le_bytes());
            header.extend_from_slice(&byte_sum(&f.data).to_le_bytes());
            offset = offset
                .checked_add(f.data.len())
                .ok_or_else(|| too_big("size"))?;
        }
        if self.header_checksum {
            let sum = byte_sum(header.get(12..header_length).unwrap_or_default());
            header
                .get_mut(4..8)
                .ok_or_else(|| too_big("header"))?
                .copy_from_slice(&sum.to_le_bytes());
        }
        if self.form == HeaderForm::Obfuscated {
            xor_header(&mut header);
        }
        let mut out = header;
        out.reserve(offset.saturating_sub(data_start));
        for f in &self.files {
            out.extend_from_slice(&f.data);
        }
        Ok(out)
    }
}
