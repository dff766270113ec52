//! Features: what fwsim extracts from the files of an unpacked tree (ELF anatomy, strings,
//! open-source components, evidence that survives a rebrand), one small module each.

pub mod evidence;
