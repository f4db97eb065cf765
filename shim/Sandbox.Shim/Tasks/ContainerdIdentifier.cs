using System.Text.RegularExpressions;

namespace Sandbox.Shim.Tasks;

/// <summary>
/// containerd's rule for object identifiers (its identifiers package): 1-76 characters, letters and digits separated
/// by single '.', '_' or '-'. containerd validates a container's id before it reaches a shim; the shim checks it again
/// because the id names directories (the sandbox's state, its share, its cgroup), so that a peer that is not
/// containerd cannot make it write outside them with "..", "/" or NUL.
/// </summary>
public static partial class ContainerdIdentifier
{
    public const int MaxLength = 76;

    /// <summary>Why <paramref name="id"/> is not a valid identifier, or null when it is.</summary>
    public static string? Problem(string id)
    {
        if (id.Length == 0)
            return "it is empty";
        if (id.Length > MaxLength)
            return $"it is {id.Length} characters long, more than containerd's {MaxLength}";
        if (!Pattern().IsMatch(id))
            return "it must be letters and digits separated by single '.', '_' or '-' (containerd's identifier rule)";
        return null;
    }

    [GeneratedRegex("^[A-Za-z0-9]+(?:[._-][A-Za-z0-9]+)*$", RegexOptions.CultureInvariant)]
    private static partial Regex Pattern();
}
