//! `kube::Resource` for the statically typed kinds (DanmEp, TenantConfig, NetworkAttachmentDefinition).

/// Implements `kube::Resource` for a type with a `metadata: ObjectMeta` field.
#[macro_export]
#[doc(hidden)]
macro_rules! static_resource {
    ($ty:ty, $kind:expr, $group:expr, $version:expr, $plural:expr, $scope:ident) => {
        impl ::kube::core::Resource for $ty {
            type DynamicType = ();
            type Scope = ::kube::core::$scope;

            fn kind(_: &()) -> ::std::borrow::Cow<'_, str> {
                $kind.into()
            }
            fn group(_: &()) -> ::std::borrow::Cow<'_, str> {
                $group.into()
            }
            fn version(_: &()) -> ::std::borrow::Cow<'_, str> {
                $version.into()
            }
            fn plural(_: &()) -> ::std::borrow::Cow<'_, str> {
                $plural.into()
            }
            fn meta(&self) -> &$crate::ObjectMeta {
                &self.metadata
            }
            fn meta_mut(&mut self) -> &mut $crate::ObjectMeta {
                &mut self.metadata
            }
        }
    };
}
