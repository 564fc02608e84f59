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
        let mut values = self.read_data_all(label)?;
        match values.len() {
            0 => Ok(None),
            1 => Ok(values.pop()),
            _ => Err(HsmError::DuplicateKey("data object")),
        }
    }

    /// The values of every data object `label` (none, one, or several after a crash in
    /// [`Worker::write_data`]), in no particular order.
    pub(crate) fn read_data_all(&self, label: &str) -> Result<Vec<Zeroizing<Vec<u8>>>, HsmError> {
        let found = self
            .session
            .find_objects(&template(label))
            .map_err(HsmError::at("C_FindObjects"))?;
        let mut values = Vec::with_capacity(found.len());
        for handle in found {
            let attrs = self
                .session
                .get_attributes(handle, &[cryptoki::object::AttributeType::Value])
                .map_err(HsmError::at("C_GetAttributeValue"))?;
            let value = attrs.into_iter().find_map(|a| match a {
                Attribute::Value(v) => Some(Zeroizing::new(v)),
                _ => None,
            });
            values.push(value.ok_or(HsmError::KeyMissing("data object value"))?);
        }
        Ok(values)
    }

    /// Replaces the value of the data object `label` (creating it on first write). The new
    /// object is made before the old one is destroyed, so a crash in between leaves two
    /// objects: [`Worker::read_data`] reports a duplicate, [`Worker::read_data_all`] gives
    /// both (the caller picks), and the next write removes all but the new one.
    pub(crate) fn write_data(&self, label: &str, value: &[u8]) -> Result<(), HsmError> {
        let old = self
            .session
            .find_objects(&template(label))
            .map_err(HsmError::at("C_FindObjects"))?;
        self.create_data(label, value)?;
        for handle in old {
            self.session
                .destroy_object(handle)
                .map_err(HsmError::at("C_DestroyObject"))?;
        }
        Ok(())
    }

    /// Adds a data object `label` beside any that exist (the first half of
    /// [`Worker::write_data`]).
    pub(crate) fn create_data(&self, label: &str, value: &[u8]) -> Result<(), HsmError> {
        if value.len() > MAX_DATA {
            return Err(HsmError::InvalidRequest("data object larger than 4 KiB"));
        }
        let mut attrs = template(label);
        attrs.push(Attribute::Application(APPLICATION.as_bytes().to_vec()));
        attrs.push(Attribute::Modifiable(true));
        attrs.push(Attribute::Value(value.to_vec()));
        self.session
            .create_object(&attrs)
            .map_err(HsmError::at("C_CreateObject"))?;
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
