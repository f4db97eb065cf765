using Google.Protobuf;
using Google.Protobuf.Reflection;

namespace Sandbox.Fuzzing;

/// <summary>
/// Fills any protobuf message with hostile values through its descriptor: each field set with some probability,
/// strings and bytes from <see cref="HostileValues"/>, numbers at their boundaries, unknown enum values, repeated and
/// map fields with a few entries, nested messages filled in turn (to a bounded depth). The message stays valid
/// protobuf; what it says is what the receiver must check.
/// </summary>
public static class ProtobufFiller
{
    public static T Fill<T>(Random random, T message, int depth = 3) where T : IMessage
    {
        foreach (var field in message.Descriptor.Fields.InDeclarationOrder())
        {
            if (random.Next(3) == 0)
                continue;
            if (field.IsMap)
            {
                var map = (System.Collections.IDictionary)field.Accessor.GetValue(message);
                var entry = field.MessageType;
                for (int i = random.Next(1, 4); i > 0; i--)
                {
                    var key = Scalar(random, entry.FindFieldByNumber(1), depth);
                    var value = Scalar(random, entry.FindFieldByNumber(2), depth);
                    if (key is not null && value is not null)
                        map[key] = value;
                }
            }
            else if (field.IsRepeated)
            {
                var list = (System.Collections.IList)field.Accessor.GetValue(message);
                for (int i = random.Next(1, 4); i > 0; i--)
                {
                    if (Scalar(random, field, depth) is { } item)
                        list.Add(item);
                }
            }
            else if (Scalar(random, field, depth) is { } value)
            {
                field.Accessor.SetValue(message, value);
            }
        }
        return message;
    }

    private static object? Scalar(Random random, FieldDescriptor field, int depth)
    {
        long number = HostileValues.Number(random);
        return field.FieldType switch
        {
            FieldType.String => HostileValues.String(random),
            FieldType.Bytes => ByteString.CopyFrom(HostileValues.Bytes(random)),
            FieldType.Bool => random.Next(2) == 0,
            FieldType.Int32 or FieldType.SInt32 or FieldType.SFixed32 => unchecked((int)number),
            FieldType.UInt32 or FieldType.Fixed32 => unchecked((uint)number),
            FieldType.Int64 or FieldType.SInt64 or FieldType.SFixed64 => number,
            FieldType.UInt64 or FieldType.Fixed64 => unchecked((ulong)number),
            FieldType.Double => random.Next(3) == 0 ? double.NaN : (double)number,
            FieldType.Float => random.Next(3) == 0 ? float.PositiveInfinity : (float)number,
            FieldType.Enum => Enum.ToObject(field.EnumType.ClrType,
                random.Next(3) == 0 ? unchecked((int)number) : field.EnumType.Values[random.Next(field.EnumType.Values.Count)].Number),
            FieldType.Message when depth > 0 => Fill(random, field.MessageType.Parser.ParseFrom(ByteString.Empty), depth - 1),
            _ => null,
        };
    }
}
