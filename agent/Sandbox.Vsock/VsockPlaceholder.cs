namespace Sandbox.Vsock; public static class VsockPlaceholder {}
