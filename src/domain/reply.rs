//! Classifying inbound SMS replies (SAFE-CONTACT.md, "Replies").
