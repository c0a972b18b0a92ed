pub mod pb {
    pub mod v1 {
        tonic::include_proto!("edgefault.v1");
        include!(concat!(env!("OUT_DIR"), "/edgefault.v1.serde.rs"));
    }
    pub const FILE_DESCRIPTOR_SET: &[u8] = tonic::include_file_descriptor_set!("edgefault_descriptor");
}
