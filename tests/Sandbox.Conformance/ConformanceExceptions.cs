using Tomlyn;
using Tomlyn.Model;

namespace Sandbox.Conformance;

/// <summary>
/// A spec that runc passes and a VM runtime cannot: <see cref="Spec"/> is a piece of the spec's name, <see cref="Why"/>
/// says why a VM cannot lift it, <see cref="Kata"/> what Kata Containers does for the same spec.
/// </summary>
public sealed record ConformanceException(string Spec, string Why, string Kata)
{
    public bool Matches(string specName) => specName.Contains(Spec, StringComparison.Ordinal);
}

/// <summary>Reads conformance-exceptions.toml: `[[exception]]` tables with spec, why and kata, each required.</summary>
public static class ConformanceExceptions
{
    public static IReadOnlyList<ConformanceException> Parse(string toml, string path)
    {
        TomlTable model;
        try
        {
            model = TomlSerializer.Deserialize<TomlTable>(toml) ?? new TomlTable();
        }
        catch (TomlException e)
        {
            throw new InvalidDataException($"{path} is not valid TOML: {e.Message}", e);
        }
        if (!model.TryGetValue("exception", out var value))
            return [];
        if (value is not TomlTableArray tables)
            throw new InvalidDataException($"{path}: 'exception' must be an array of tables ([[exception]])");
        var exceptions = new List<ConformanceException>();
        foreach (var table in tables)
        {
            string Field(string key) =>
                table.TryGetValue(key, out var v) && v is string text && text.Trim().Length > 0 ? text.Trim()
                : throw new InvalidDataException($"{path}: exception #{exceptions.Count + 1} has no '{key}' (spec, why and kata are required)");
            exceptions.Add(new ConformanceException(Field("spec"), Field("why"), Field("kata")));
        }
        return exceptions;
    }
}
