//! Unit tests of the JFFS2 reader on images from the project writer.
