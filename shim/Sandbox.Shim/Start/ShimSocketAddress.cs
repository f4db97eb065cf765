using System.Security.Cryptography;
using System.Text;

namespace Sandbox.Shim.Start;

/// <summary>
/// Where the daemon of a group (a pod, or a lone container) listens: a deterministic Unix socket path
/// <c>&lt;dir&gt;/&lt;hex sha256(containerd address/namespace/group id)&gt;</c>, the same rule as containerd's runc
/// shim, so that every container of a pod finds the same daemon. The directory is /run/sandbox/s unless
/// SANDBOX_SHIM_SOCKET_DIR says otherwise.
/// </summary>
public static class ShimSocketAddress
{
    public const string DefaultDirectory = "/run/sandbox/s";
    public const string DirectoryVariable = "SANDBOX_SHIM_SOCKET_DIR";

    /// <summary>Longest usable Unix socket path (sun_path is 108 bytes; containerd's limit is 106).</summary>
    public const int MaxPathBytes = 106;

    public static string Directory =>
        Environment.GetEnvironmentVariable(DirectoryVariable) is { Length: > 0 } dir ? dir : DefaultDirectory;

    public static string PathFor(string containerdAddress, string containerdNamespace, string groupId, string? directory = null)
    {
        var hash = SHA256.HashData(Encoding.UTF8.GetBytes($"{containerdAddress}/{containerdNamespace}/{groupId}"));
        string path = System.IO.Path.Combine(directory ?? Directory, Convert.ToHexStringLower(hash));
        int length = Encoding.UTF8.GetByteCount(path);
        if (length > MaxPathBytes)
        {
            throw new InvalidOperationException(
                $"the shim socket path {path} is {length} bytes, over the Unix socket limit of {MaxPathBytes}: " +
                $"choose a shorter {DirectoryVariable}");
        }
        return path;
    }

    /// <summary>The address containerd dials: unix://PATH.</summary>
    public static string ToAddress(string socketPath) => "unix://" + socketPath;

    /// <summary>The path of a unix:// address (a bare path is returned as is).</summary>
    public static string ToPath(string address) =>
        address.StartsWith("unix://", StringComparison.Ordinal) ? address["unix://".Length..] : address;
}
