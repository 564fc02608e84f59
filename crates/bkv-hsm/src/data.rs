//! Small private data objects in the token (CKO_DATA, CKA_PRIVATE, CKA_TOKEN), read and
//! written by label: where a node keeps what must survive a rollback of its data directory
//! (the durability watermark). SoftHSM encrypts private objects in its token files.

use cryptoki::object::{Attribute, ObjectClass};
use zeroize::Zeroizing;

use crate::HsmError;
use crate::worker::Worker;

/// Largest value a data object may hold.
pub const MAX_DATA: usize = 4096;
/// Application name the objects carry (CKA_APPLICATION).
const APPLICATION: &str = "bkv";

fn template(label: &str) -> Vec<Attribute> {
    vec![
        Attribute::Class(ObjectClass::DATA),
        Attribute::Token(true),
        Attribute::Private(true),
        Attribute::Label(label.as_bytes().to_vec()),
    ]
}

impl Worker {
    /// The value of the data object `label`, if there is one.
    pub(crate) fn read_data(&self, label: &str) -> Result<Option<Zeroizing<Vec<u8>>>, HsmError> {
        let found = self
            .session
            .find_objects(&template(label))
            .map_err(HsmError::at("C_FindObjects"))?;
        let handle = match found.as_slice() {
            [] => return Ok(None),
            [one] => *one,
            _ => return Err(HsmError::DuplicateKey("data object")),
        };
        let attrs = self
            .session
            .get_attributes(handle, &[cryptoki::object::AttributeType::Value])
            .map_err(HsmError::at("C_GetAttributeValue"))?;
        for attr in attrs {
            if let Attribute::Value(v) = attr {
                return Ok(Some(Zeroizing::new(v)));
            }
        }
        Err(HsmError::KeyMissing("data object value"))
    }

    /// Replaces the value of the data object `label` (creating it on first write). The new
    /// object is made before the old one is destroyed, so a crash in between leaves two
    /// objects, of which [`Worker::read_data`] refuses neither silently: it reports a
    /// duplicate, and the next write repairs it.
    pub(crate) fn write_data(&self, label: &str, value: &[u8]) -> Result<(), HsmError> {
        if value.len() > MAX_DATA {
            return Err(HsmError::InvalidRequest("data object larger than 4 KiB"));
        }
        let old = self
            .session
            .find_objects(&template(label))
            .map_err(HsmError::at("C_FindObjects"))?;
        let mut attrs = template(label);
        attrs.push(Attribute::Application(APPLICATION.as_bytes().to_vec()));
        attrs.push(Attribute::Modifiable(true));
        attrs.push(Attribute::Value(value.to_vec()));
        self.session
            .create_object(&attrs)
            .map_err(HsmError::at("C_CreateObject"))?;
        for handle in old {
            self.session
                .destroy_object(handle)
                .map_err(HsmError::at("C_DestroyObject"))?;
        }
        Ok(())
    }

    /// Destroys the data object `label`, if any.
    pub(crate) fn delete_data(&self, label: &str) -> Result<(), HsmError> {
        let found = self
            .session
            .find_objects(&template(label))
            .map_err(HsmError::at("C_FindObjects"))?;
        for handle in found {
            self.session
                .destroy_object(handle)
                .map_err(HsmError::at("C_DestroyObject"))?;
        }
        Ok(())
    }
}
