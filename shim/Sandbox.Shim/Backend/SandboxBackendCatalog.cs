using Sandbox.Shim.Runc;

namespace Sandbox.Shim.Backend;

/// <summary>
/// Chooses the backend by SANDBOX_SHIM_BACKEND: "runc" is <see cref="HostRuncBackend"/> (development yardstick,
/// containers on the host); "vm" or unset is the VM backend, the product.
/// </summary>
public static class SandboxBackendCatalog
{
    public const string Variable = "SANDBOX_SHIM_BACKEND";

    public static ISandboxBackendFactory Select() => Select(Environment.GetEnvironmentVariable(Variable));

    public static ISandboxBackendFactory Select(string? name) => name switch
    {
        null or "" or "vm" => new VmBackendFactory(),
        "runc" => new HostRuncBackendFactory(),
        _ => throw new InvalidOperationException($"{Variable}={name} names no backend: use \"vm\" (default) or \"runc\""),
    };
}
